// Writes NAME.br (brotli, quality 11) and NAME.gz (gzip, level 9) beside each file named on the
// command line, and checks that each decompresses to the file again. Used by the vendor-*.sh
// scripts: the copies are committed, and cmdbgraph/http/assets.py serves them to browsers that
// accept them. Node's zlib only: the same Node.js that runs npm. The output is deterministic
// (gzip's header carries no time or name), so re-vendoring the same version changes nothing.
import { readFileSync, writeFileSync } from "node:fs";
import zlib from "node:zlib";

for (const path of process.argv.slice(2)) {
  const content = readFileSync(path);
  const brotli = zlib.brotliCompressSync(content, {
    params: {
      [zlib.constants.BROTLI_PARAM_QUALITY]: zlib.constants.BROTLI_MAX_QUALITY,
      [zlib.constants.BROTLI_PARAM_MODE]: zlib.constants.BROTLI_MODE_TEXT,
      [zlib.constants.BROTLI_PARAM_SIZE_HINT]: content.length,
    },
  });
  const gzip = zlib.gzipSync(content, { level: zlib.constants.Z_BEST_COMPRESSION });
  if (!zlib.brotliDecompressSync(brotli).equals(content) || !zlib.gunzipSync(gzip).equals(content)) {
    throw new Error(`${path}: a compressed copy does not decompress to the file`);
  }
  writeFileSync(`${path}.br`, brotli);
  writeFileSync(`${path}.gz`, gzip);
  console.log(`${path}: ${content.length} bytes, br ${brotli.length}, gzip ${gzip.length}`);
}
