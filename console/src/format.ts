/**
 * Exact credits in the browser. The API sends credits as JSON numbers with at most 6 decimals; for every
 * such value below 10^9 the shortest decimal form of the parsed double (String(n)) is exactly the text the
 * service wrote, so the console shows that text and never does float arithmetic on it. Sums (stacked
 * chart, totals of a page) are done in integer micro-credits with BigInt.
 */

export type CreditsValue = number | string;

const MICRO = 1_000_000n;

/** The decimal text of an API credit value, without exponent notation. */
export function creditsText(value: CreditsValue): string {
  if (typeof value === 'string') return value;
  const text = String(value);
  if (!/e/i.test(text)) return text;
  // Exponent forms (below 1e-6 or above 1e21) cannot come from the API; expand them exactly anyway.
  return microToText(toMicro(value.toFixed(6)));
}

/** Integer micro-credits of a decimal text or API number. */
export function toMicro(value: CreditsValue): bigint {
  const text = typeof value === 'string' ? value.trim() : creditsText(value);
  const match = /^(-)?(\d+)(?:\.(\d{0,6}))?$/.exec(text);
  if (!match) throw new Error(`not an amount of credits: ${text}`);
  const micro = BigInt(match[2]) * MICRO + BigInt((match[3] ?? '').padEnd(6, '0'));
  return match[1] ? -micro : micro;
}

/** The shortest decimal text of micro-credits. */
export function microToText(micro: bigint): string {
  const negative = micro < 0n;
  const abs = negative ? -micro : micro;
  const whole = (abs / MICRO).toString();
  const fraction = (abs % MICRO).toString().padStart(6, '0').replace(/0+$/, '');
  return (negative ? '-' : '') + whole + (fraction ? '.' + fraction : '');
}

/** Groups the integer part in threes with commas (no locale rounding, no float maths). */
export function formatCredits(value: CreditsValue): string {
  const text = creditsText(value);
  const [sign, rest] = text.startsWith('-') ? ['\u2212', text.slice(1)] : ['', text];
  const [whole, fraction] = rest.split('.');
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return sign + grouped + (fraction ? '.' + fraction : '');
}

/** Integers (token counts, requests). */
export function formatCount(value: number): string {
  return String(value).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** A micro-credit amount as a plotting number (chart geometry only; the labels use exact text). */
export function microToPlot(micro: bigint): number {
  return Number(micro) / 1e6;
}

const localFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });

/** A time in the viewer's zone. */
export function localTime(iso: string): string {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : localFormat.format(date);
}

/** The same instant in UTC, for the hover title. */
export function utcTime(iso: string): string {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC').replace(/Z$/, ' UTC');
}

/** YYYY-MM-DD of a UTC day, `offset` days from today. */
export function utcDay(offsetDays = 0, now = Date.now()): string {
  return new Date(now + offsetDays * 86_400_000).toISOString().slice(0, 10);
}

/** Every UTC day from..to, both included. */
export function daysBetween(from: string, to: string): string[] {
  const days: string[] = [];
  for (let t = Date.parse(`${from}T00:00:00Z`); t <= Date.parse(`${to}T00:00:00Z`); t += 86_400_000) {
    days.push(new Date(t).toISOString().slice(0, 10));
  }
  return days;
}
