/**
 * Duplicate object keys in JSON text. JSON.parse keeps the last of `{"userId":"a","userId":"b"}`, while a
 * proxy, a WAF or a log reader may act on the first: a request that means two things is refused instead
 * (RFC 8259 says names within an object SHOULD be unique; I-JSON, RFC 7493, says MUST).
 *
 * One pass over the text with an explicit stack (no recursion, so any nesting is safe). Keys are compared
 * as JSON.parse decodes them ("a" and "\u0061" are the same key). Text that is not valid JSON yields null
 * (the parser refuses it afterwards); the scan never throws.
 */
export function findDuplicateKey(text: string): string[] | null {
  // One frame per open object or array: an object's keys so far, or an array's current index.
  const stack: { keys: Set<string> | null; index: number; key: string | null; expectKey: boolean }[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const end = stringEnd(text, i);
      if (end < 0) return null;
      const top = stack[stack.length - 1];
      if (top?.keys && top.expectKey) {
        let key = text.slice(i + 1, end);
        if (key.includes('\\')) {
          try {
            key = JSON.parse(text.slice(i, end + 1)) as string; // decode escapes
          } catch {
            return null;
          }
        }
        if (top.keys.has(key)) return [...pathOf(stack.slice(0, -1)), key];
        top.keys.add(key);
        top.key = key;
        top.expectKey = false;
      }
      i = end;
    } else if (c === 0x7b /* { */) {
      stack.push({ keys: new Set(), index: 0, key: null, expectKey: true });
    } else if (c === 0x5b /* [ */) {
      stack.push({ keys: null, index: 0, key: null, expectKey: false });
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
    } else if (c === 0x2c /* , */) {
      const top = stack[stack.length - 1];
      if (top?.keys) top.expectKey = true;
      else if (top) top.index++;
    }
  }
  return null;
}

/** Index of the quote that closes the string opening at `start`, or -1 when it is not closed. */
function stringEnd(text: string, start: number): number {
  let i = start + 1;
  for (;;) {
    const quote = text.indexOf('"', i);
    if (quote < 0) return -1;
    let backslashes = 0;
    for (let j = quote - 1; j > start && text.charCodeAt(j) === 0x5c; j--) backslashes++;
    if (backslashes % 2 === 0) return quote;
    i = quote + 1;
  }
}

/** The path of the innermost open container: object keys and array indexes from the outside in. */
function pathOf(frames: { keys: Set<string> | null; index: number; key: string | null }[]): string[] {
  return frames.map((frame) => (frame.keys ? (frame.key ?? '') : String(frame.index)));
}
