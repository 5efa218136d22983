// Tokenize texts with a real tokenizer (js-tiktoken), for bench/stream_tokens.py.
//
//   node bench/tokenize.cjs NODE_PREFIX ENCODING < texts.json > tokens.json
//
// In: a JSON list of strings. Out: for each string, its tokens' bytes as hex, in order.
// NODE_PREFIX is where `npm install --prefix` put js-tiktoken (bench/.node).
const { createRequire } = require("node:module");
const path = require("node:path");

const [prefix, encoding] = process.argv.slice(2);
const load = createRequire(path.join(path.resolve(prefix), "node_modules") + "/");
const { Tiktoken } = load("js-tiktoken/lite");
const ranks = load(`js-tiktoken/ranks/${encoding}`);
const enc = new Tiktoken(ranks.default || ranks);

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (part) => { input += part; });
process.stdin.on("end", () => {
  const out = JSON.parse(input).map((text) =>
    enc.encode(text).map((id) => Buffer.from(enc.textMap.get(id)).toString("hex")));
  process.stdout.write(JSON.stringify(out));
});
