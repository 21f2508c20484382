// Streaming decode: token ids in, text out as soon as it is complete. A character whose UTF-8 bytes are split over two
// tokens (common for Chinese and emoji under byte-level BPE) is held back until its last byte arrives, so the stream
// never shows U+FFFD for valid UTF-8. Invalid bytes still decode to U+FFFD, once they are known to be invalid.
// The holding back is the WHATWG TextDecoder's `stream: true` mode (encoding.spec.whatwg.org, "decode"), which keeps
// an incomplete trailing sequence for the next call.

export interface StreamDecoder {
  push(id: number): string; // the text completed by this token ('' while a character is incomplete)
  flush(): string; // the end of the stream: what is held back, as U+FFFD if it never completed
}

export function createStreamDecoder(bytesOf: (id: number) => Uint8Array): StreamDecoder {
  // ignoreBOM: a leading U+FEFF is text the model produced, not a byte-order mark to drop.
  let decoder = new TextDecoder('utf-8', { ignoreBOM: true });
  return {
    push(id: number): string {
      return decoder.decode(bytesOf(id), { stream: true });
    },
    flush(): string {
      const rest = decoder.decode();
      decoder = new TextDecoder('utf-8', { ignoreBOM: true });
      return rest;
    },
  };
}
