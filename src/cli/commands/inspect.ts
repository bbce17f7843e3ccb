import path from "node:path";
import type { Command } from "commander";
import { loadModel } from "../../models/load.js";
import { numel } from "../../tensor/tensor.js";
import { inspectGguf, isGgufPath } from "./inspect-gguf.js";

export function registerInspect(program: Command): void {
  program
    .command("inspect")
    .description("show a model's architecture, size and storage")
    .argument("<model>", "Hugging Face model folder (local path), or a .gguf file")
    .option("--json", "print one JSON object")
    .action((dir: string, opts: { json?: boolean }) => {
      if (isGgufPath(dir)) return inspectGguf(dir, opts);
      const model = loadModel(dir);
      const c = model.config;
      const w = model.weights;
      const names = w.names();
      let params = 0;
      let bytes = 0;
      const dtypes = new Map<string, number>();
      for (const n of names) {
        params += numel(w.shape(n));
        bytes += w.storedBytes(n);
        dtypes.set(w.dtype(n), (dtypes.get(w.dtype(n)) ?? 0) + 1);
      }
      const info = {
        model: path.resolve(dir),
        architecture: c.architecture,
        layers: c.numLayers,
        hiddenSize: c.hiddenSize,
        intermediateSize: c.intermediateSize,
        heads: c.numHeads,
        kvHeads: c.numKvHeads,
        headDim: c.headDim,
        vocabSize: c.vocabSize,
        maxPositions: c.maxPositions,
        tiedEmbeddings: c.tieWordEmbeddings,
        // per-layer widths after structured pruning (absent: every layer has the widths above)
        layerWidths: c.layerWidths,
        parameters: params,
        tensors: names.length,
        dtypes: Object.fromEntries(dtypes),
        bytes,
      };
      model.close();
      if (opts.json) {
        console.log(JSON.stringify(info));
        return;
      }
      const fmt = (n: number) => n.toLocaleString("en-US");
      const rows: [string, string][] = [
        ["model", info.model],
        ["architecture", info.architecture],
        ["layers", `${c.numLayers} (hidden ${c.hiddenSize}, mlp ${c.intermediateSize}, heads ${c.numHeads}/${c.numKvHeads} kv, head_dim ${c.headDim})`],
        ...(c.layerWidths
          ? [["widths", c.layerWidths.map((l, i) => `${i}: heads ${l.numHeads}/${l.numKvHeads} kv, mlp ${l.intermediateSize}`).join("; ")] as [string, string]]
          : []),
        ["vocabulary", `${fmt(c.vocabSize)} tokens, ${fmt(c.maxPositions)} positions${c.tieWordEmbeddings ? ", tied LM head" : ""}`],
        ["parameters", fmt(params)],
        ["dtype", [...dtypes].map(([d, n]) => `${d} (${n} tensors)`).join(", ")],
        ["bytes", `${fmt(bytes)} of tensor data`],
      ];
      for (const [k, v] of rows) console.log(`${k.padEnd(13)}${v}`);
    });
}
