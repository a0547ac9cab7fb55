// Reads the text chunks of a PNG (tEXt, iTXt, zTXt): that is where ComfyUI and Loom put
// the `workflow` (UI JSON) and `prompt` (API JSON) of the image.

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

async function inflate(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** {keyword: text} for every text chunk; throws if the bytes are not a PNG. */
export async function readPngText(buffer) {
  const bytes = new Uint8Array(buffer);
  if (bytes.length < 8 || SIGNATURE.some((b, i) => bytes[i] !== b)) throw new Error("not a PNG file");
  const view = new DataView(buffer instanceof ArrayBuffer ? buffer : bytes.buffer);
  const latin1 = new TextDecoder("latin1");
  const utf8 = new TextDecoder("utf-8");
  const out = {};
  let pos = 8;
  while (pos + 8 <= bytes.length) {
    const length = view.getUint32(pos);
    const type = latin1.decode(bytes.subarray(pos + 4, pos + 8));
    const data = bytes.subarray(pos + 8, pos + 8 + length);
    if (type === "tEXt") {
      const sep = data.indexOf(0);
      if (sep > 0) out[latin1.decode(data.subarray(0, sep))] = latin1.decode(data.subarray(sep + 1));
    } else if (type === "zTXt") {
      const sep = data.indexOf(0);
      if (sep > 0) out[latin1.decode(data.subarray(0, sep))] = latin1.decode(await inflate(data.subarray(sep + 2)));
    } else if (type === "iTXt") {
      const sep = data.indexOf(0);
      if (sep > 0) {
        const keyword = latin1.decode(data.subarray(0, sep));
        const compressed = data[sep + 1] === 1;
        let p = sep + 3;
        p = data.indexOf(0, p) + 1; // language tag
        p = data.indexOf(0, p) + 1; // translated keyword
        const text = data.subarray(p);
        out[keyword] = utf8.decode(compressed ? await inflate(text) : text);
      }
    } else if (type === "IEND") {
      break;
    }
    pos += 12 + length;
  }
  return out;
}
