import fs from "node:fs";
import { TextTokenizer } from "./src/tokenizer/tokenizer.js";
process.env.TOPIARY_NO_CACHE = "1";
const text = fs.readFileSync("../shared/data/tinystories/test.txt", "utf8");
for (const n of process.argv.slice(2)) {
  const d = `../shared/reference/architectures/${n}`;
  const tok = TextTokenizer.load(d);
  let t0 = Date.now(); const ids = tok.encode(text); const t1 = Date.now() - t0;
  t0 = Date.now(); const back = tok.decode(ids, { skipSpecial: true }); const t2 = Date.now() - t0;
  console.log(n, ids.length, "encode", t1, "ms; decode", t2, "ms; roundtrip", back === text);
}
