// The recovery engine's gradients against PyTorch autograd (../shared/reference/recovery):
// mean KL(teacher ‖ sparsegpt-50 student) on 2 × 64 tokens of calib.txt, d loss / d W for the 35
// decoder linears (unmasked) and d loss / d (layer-0 input).
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, test } from "node:test";
import { bytesToFloat32, SafetensorsFile } from "../../src/formats/safetensors.js";
import { loadModel } from "../../src/models/load.js";
import { releaseSessions } from "../../src/runtime/ort.js";
import { headWeights, modelGradients } from "../../src/train/model-backward.js";
import { REFERENCE, STORIES } from "../helpers.js";

after(releaseSessions);

/** ‖a − b‖ / ‖b‖ and max|a − b| / max|b|. */
function relErrors(a: ArrayLike<number>, b: ArrayLike<number>): { norm: number; max: number } {
  let dd = 0;
  let bb = 0;
  let dmax = 0;
  let bmax = 0;
  for (let i = 0; i < b.length; i++) {
    const d = a[i]! - b[i]!;
    dd += d * d;
    bb += b[i]! * b[i]!;
    dmax = Math.max(dmax, Math.abs(d));
    bmax = Math.max(bmax, Math.abs(b[i]!));
  }
  return { norm: Math.sqrt(dd / bb), max: dmax / bmax };
}

test("gradients of mean KL equal PyTorch's golden gradients (‖Δ‖/‖g‖ ≤ 1e-4 per tensor)", async () => {
  const dir = path.join(REFERENCE, "recovery");
  const meta = JSON.parse(fs.readFileSync(path.join(dir, "golden_grads.json"), "utf8"));
  const f = SafetensorsFile.open(path.join(dir, "golden_grads.safetensors"));
  const read = (n: string) => bytesToFloat32(f.readBytes(n), f.info(n).dtype, f.file);
  const idsBytes = f.readBytes("input_ids");
  const ids = new Int32Array(idsBytes.buffer.slice(idsBytes.byteOffset, idsBytes.byteOffset + idsBytes.byteLength));
  const [B, T] = f.info("input_ids").shape as [number, number];
  const teacher = loadModel(STORIES);
  const student = loadModel(path.join(REFERENCE, "models", "sparsegpt-50"));
  const teacherLogits = await teacher.forward(ids, B, T);
  const errors: Record<string, { norm: number; max: number }> = {};
  const r = await modelGradients(
    student,
    headWeights(student),
    ids,
    { loss: "kl", temperature: 1, teacherLogits, B, T },
    (i) => student.layerWeights(i),
    (i, grads) => {
      for (const l of student.linears(i)) errors[l.name] = relErrors(grads.get(`${l.suffix}.weight`)!, read(`grad.${l.name}.weight`));
    },
  );
  errors["inputs_embeds"] = relErrors(r.gradInput, read("grad.inputs_embeds"));
  f.close();
  teacher.close();
  student.close();
  assert.ok(Math.abs(r.loss - meta.loss_value_float64) < 1e-5, `loss ${r.loss} vs ${meta.loss_value_float64}`);
  assert.equal(Object.keys(errors).length, 36);
  const worst = Object.entries(errors).sort((a, b) => b[1].norm - a[1].norm)[0]!;
  const worstMax = Math.max(...Object.values(errors).map((e) => e.max));
  console.log(`# loss ${r.loss} (golden ${meta.loss_value_float64}); worst ‖Δ‖/‖g‖ ${worst[1].norm.toExponential(2)} (${worst[0]}); worst max|Δ|/max|g| ${worstMax.toExponential(2)}`);
  for (const [name, e] of Object.entries(errors)) {
    assert.ok(e.norm <= 1e-4, `${name}: ‖Δ‖/‖g‖ = ${e.norm}`);
    assert.ok(e.max <= 1e-4, `${name}: max|Δ|/max|g| = ${e.max}`);
  }
});
