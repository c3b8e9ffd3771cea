// A stock tus client (tus-js-client, the one Uppy and most web and React Native apps use) run by
// tests/web/test_field_upload_clients.py against a real `custody serve`.
//   node tus_upload.js ENDPOINT TOKEN FILE CHUNK_BYTES OVERRIDE(0|1) METADATA_JSON
// Prints one JSON line: {"ok": true, "url": ...} or {"ok": false, "error": ...}; exit 0 / 1.
const fs = require('fs');
const tus = require('tus-js-client');

const [, , endpoint, token, path, chunk, override, meta] = process.argv;
const size = fs.statSync(path).size;
const upload = new tus.Upload(fs.createReadStream(path), {
  endpoint,
  headers: { Authorization: `Bearer ${token}` },
  chunkSize: parseInt(chunk, 10),
  uploadSize: size,
  overridePatchMethod: override === '1',
  metadata: JSON.parse(meta),
  retryDelays: [],
  onError: (e) => {
    console.log(JSON.stringify({ ok: false, error: String(e && e.message) }));
    process.exit(1);
  },
  onSuccess: () => {
    console.log(JSON.stringify({ ok: true, url: upload.url }));
    process.exit(0);
  },
});
upload.start();
