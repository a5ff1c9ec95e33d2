import fc from 'fast-check';
import { costOfTokens, formatCredits, fromDb, parseCredits, toCredits } from '../../src/lib/money';

const ok = (input: unknown) => {
  const parsed = parseCredits(input);
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.value;
};

describe('parseCredits', () => {
  test.each([
    [1, 1_000_000n],
    ['1', 1_000_000n],
    [0.1, 100_000n],
    ['0.000001', 1n],
    [0.000001, 1n],
    [123.456789, 123_456_789n],
    [1e9, 1_000_000_000_000_000n],
    ['1000000000.000000', 1_000_000_000_000_000n],
    [0, 0n],
    ['0.5', 500_000n],
    ['10', 10_000_000n],
  ])('When given %p, then it is %p micro-credits', (input, expected) => {
    expect(ok(input)).toBe(expected);
  });

  test.each([[-1], ['-0.5'], [1e9 + 1], ['1.0000001'], [0.0000001], ['abc'], [null], [undefined], [Infinity], [NaN], ['1e3'], [{}], [[1]], [''], [' 1'], ['1 '], ['1\n'], ['\t2.5'], ['00005'], ['01.5'], ['+5']])(
    'When given %p, then it is refused',
    (input) => {
      expect(parseCredits(input).ok).toBe(false);
    },
  );

  test('When a value is formatted and parsed again, then it is unchanged', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 1_000_000_000_000_000n }), (micro) => {
        expect(ok(formatCredits(micro))).toBe(micro);
        expect(ok(toCredits(micro))).toBe(micro);
      }),
    );
  });

  test('When a sum is below 2^33 credits, then its JSON number prints exactly (the documented limit of toCredits)', () => {
    const limit = 2n ** 33n * 1_000_000n - 1n;
    fc.assert(
      fc.property(fc.bigInt({ min: limit - 10_000_000n, max: limit }), (micro) => {
        expect(JSON.stringify(toCredits(micro))).toBe(formatCredits(micro));
      }),
    );
  });
});

describe('costOfTokens', () => {
  test('When tokens times price is not a whole micro-credit, then it rounds up', () => {
    expect(costOfTokens(1, 1_000_000n)).toBe(1n);
    expect(costOfTokens(1, 1n)).toBe(1n);
    expect(costOfTokens(0, 5_000_000n)).toBe(0n);
    expect(costOfTokens(1_000_000, 3_000_000n)).toBe(3_000_000n);
    expect(costOfTokens(333, 3_000_000n)).toBe(999n);
    expect(costOfTokens(1, 1_500_000n)).toBe(2n);
  });
});

describe('fromDb', () => {
  test('When pg returns strings, numbers or null, then they become bigint', () => {
    expect(fromDb('9007199254740993')).toBe(9007199254740993n);
    expect(fromDb(5)).toBe(5n);
    expect(fromDb(null)).toBe(0n);
    expect(() => fromDb('1.5')).toThrow();
  });
});
