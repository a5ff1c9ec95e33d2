import fc from 'fast-check';
import { findDuplicateKey } from '../../src/lib/json-duplicates';

describe('findDuplicateKey', () => {
  test.each<[string, string[] | null]>([
    ['{"userId":"a","credits":1}', null],
    ['{"userId":"a","credits":1,"userId":"b"}', ['userId']],
    ['{"a":{"x":1,"y":{"x":2}},"x":3}', null],
    ['{"a":{"x":1,"x":2}}', ['a', 'x']],
    ['{"items":[{"k":1},{"k":1,"k":2}]}', ['items', '1', 'k']],
    ['[{"a":1},{"a":1}]', null],
    ['{"a":1,"\\u0061":2}', ['a']], // the same key once decoded
    ['{"a":"}\\",{\\"a\\":","b":"a"}', null], // quotes, braces and commas inside strings are text
    ['{"a\\\\":1,"a":2}', null], // an escaped backslash ends the key `a\`
    ['{"a":[1,{"b":2}],"c":{"d":[{"e":1,"e":1}]}}', ['c', 'd', '0', 'e']],
    ['{"a":1,"a"', ['a']], // found before the text turns out to be invalid: refused either way
    ['{"a":"unterminated', null],
    ['not json at all', null],
  ])('When the body is %s, then the duplicate is %p', (text, expected) => {
    expect(findDuplicateKey(text)).toEqual(expected);
  });

  test('When an object is written with distinct keys, then no duplicate is found; with one key twice, then it is', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.jsonValue(), { maxKeys: 8 }), fc.string(), (object, key) => {
        const text = JSON.stringify(object);
        expect(findDuplicateKey(text)).toBeNull();
        const doubled = `{${JSON.stringify(key)}:1,${text.slice(1, -1)}${text === '{}' ? '' : ','}${JSON.stringify(key)}:2}`;
        expect(findDuplicateKey(doubled)).toEqual([key]);
      }),
    );
  });
});
