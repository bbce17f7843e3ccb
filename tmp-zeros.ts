import { loadModel } from "./src/models/load.js";
const [a, ...bs] = process.argv.slice(2);
const A = loadModel(a!);
for (const b of bs) {
  const B = loadModel(b!);
  let diff = 0, za = 0, zb = 0;
  for (let i = 0; i < A.numLayers; i++) for (const l of A.linears(i)) {
    const wa = A.weights.read(`${l.name}.weight`), wb = B.weights.read(`${l.name}.weight`);
    for (let k = 0; k < wa.length; k++) { const x = wa[k] === 0, y = wb[k] === 0; za += +x; zb += +y; if (x !== y) diff++; }
  }
  console.log(b, { za, zb, diff });
}
