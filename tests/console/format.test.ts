import fc from 'fast-check';
import { creditsText, formatCredits, microToText, toMicro } from '../../console/src/format';
import { MAX_CREDITS_MICRO, toCredits } from '../../src/lib/money';

/** The console shows credits exactly as the service wrote them (console/src/format.ts). */
describe('console credit formatting', () => {
  test('When the service sends any amount up to 1,000,000,000 credits as a JSON number, then the console shows exactly its micro-credits', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -MAX_CREDITS_MICRO, max: MAX_CREDITS_MICRO }), (micro) => {
        const sent = JSON.parse(JSON.stringify(toCredits(micro))) as number;
        expect(creditsText(sent)).toBe(microToText(micro));
        expect(toMicro(sent)).toBe(micro);
      }),
      { numRuns: 5000 },
    );
  });

  test('When amounts are grouped for display, then only separators are added', () => {
    expect(formatCredits(0.000001)).toBe('0.000001');
    expect(formatCredits(1234567.5)).toBe('1,234,567.5');
    expect(formatCredits(999999999.999999)).toBe('999,999,999.999999');
    expect(formatCredits(-0.28)).toBe('\u22120.28');
    expect(formatCredits('1000')).toBe('1,000');
  });

  test('When micro-credits are summed (chart totals), then the sum is exact where floats are not', () => {
    expect(0.1 + 0.2).not.toBe(0.3);
    expect(microToText(toMicro(0.1) + toMicro(0.2))).toBe('0.3');
    expect(microToText(toMicro(999999999.999999) * 3n)).toBe('2999999999.999997');
  });
});
