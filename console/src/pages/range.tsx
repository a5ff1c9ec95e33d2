import { useState } from 'preact/hooks';

/** A from/to pair of UTC days; applied on submit so a half-typed date does not fire requests. */
export function RangeForm({ range, onChange }: { range: { from: string; to: string }; onChange: (r: { from: string; to: string }) => void }) {
  const [from, setFrom] = useState(range.from);
  const [to, setTo] = useState(range.to);
  return (
    <form
      class="range"
      aria-label="Date range"
      onSubmit={(e) => {
        e.preventDefault();
        onChange({ from, to });
      }}
    >
      <label>
        From (UTC day)
        <input type="date" name="from" required value={from} onInput={(e) => setFrom(e.currentTarget.value)} />
      </label>
      <label>
        To (UTC day)
        <input type="date" name="to" required value={to} onInput={(e) => setTo(e.currentTarget.value)} />
      </label>
      <button type="submit">Show</button>
    </form>
  );
}
