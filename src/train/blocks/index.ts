// The block backward of each family that has one besides Llama (train/llama-block.ts), by
// FamilyAdapter name.
import type { FamilyBlockBackward } from "./family-block.js";
import { bloomBlockBackward } from "./bloom.js";
import { gemmaBlockBackward } from "./gemma.js";
import { gptNeoxBlockBackward } from "./gpt-neox.js";
import { gpt2BlockBackward } from "./gpt2.js";
import { optBlockBackward } from "./opt.js";
import { phi3BlockBackward } from "./phi3.js";

const BLOCKS: Record<string, FamilyBlockBackward<any>> = {
  phi3: phi3BlockBackward,
  gemma2: gemmaBlockBackward,
  gemma3: gemmaBlockBackward,
  opt: optBlockBackward,
  gpt2: gpt2BlockBackward,
  bloom: bloomBlockBackward,
  gpt_neox: gptNeoxBlockBackward,
};

/** The block backward of family `name`, or undefined. */
export function familyBlockBackward(name: string): FamilyBlockBackward | undefined {
  return BLOCKS[name];
}
