import { useRef, useState } from 'preact/hooks';
import { api, randomId } from '../api';
import { Credits, DataTable, ErrorBox, Section, Time, useAsync } from '../components';
import type { PageProps } from '.';

type Price = Awaited<ReturnType<typeof setPrice>>;
const setPrice = (modelId: string, body: { inputPricePer1M: string; outputPricePer1M: string; cachedInputPricePer1M?: string }, idempotencyKey: string) =>
  api.call('put', '/api/models/{modelId}', { params: { modelId }, body, idempotencyKey });

export function PricesPage({ me }: PageProps) {
  const [version, setVersion] = useState(0);
  const prices = useAsync(() => api.call('get', '/api/models'), [version]);
  return (
    <>
      <h1 tabIndex={-1}>Prices</h1>
      <Section title="Current prices">
        <ErrorBox error={prices.error} />
        <DataTable
          caption="Price in effect for each model, credits per 1M tokens"
          rows={prices.data ?? []}
          rowKey={(p) => p.modelId}
          empty={prices.loading ? 'Loading…' : 'No prices'}
          columns={[
            { header: 'Model', cell: (p) => p.modelId },
            { header: 'Input', numeric: true, cell: (p) => <Credits value={p.inputPricePer1M} /> },
            { header: 'Cached input', numeric: true, cell: (p) => <Credits value={p.cachedInputPricePer1M} /> },
            { header: 'Output', numeric: true, cell: (p) => <Credits value={p.outputPricePer1M} /> },
            { header: 'Version', numeric: true, cell: (p) => String(p.priceVersion) },
            { header: 'Effective from', cell: (p) => <Time iso={p.effectiveFrom} /> },
          ]}
        />
      </Section>
      {me.role === 'admin' ? (
        <NewVersionForm models={(prices.data ?? []).map((p) => p.modelId)} onDone={() => setVersion((v) => v + 1)} />
      ) : (
        <p class="notice" role="note">
          Setting prices needs the admin role.
        </p>
      )}
    </>
  );
}

/** A new price version, effective now (earlier versions are kept by the service). */
function NewVersionForm({ models, onDone }: { models: string[]; onDone: () => void }) {
  const [modelId, setModelId] = useState('');
  const [input, setInput] = useState('');
  const [cached, setCached] = useState('');
  const [output, setOutput] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const [created, setCreated] = useState<Price | null>(null);
  const pending = useRef<{ body: string; key: string } | null>(null);

  const submit = async (e: Event) => {
    e.preventDefault();
    const body = { inputPricePer1M: input.trim(), outputPricePer1M: output.trim(), ...(cached.trim() ? { cachedInputPricePer1M: cached.trim() } : {}) };
    const text = JSON.stringify([modelId, body]);
    if (pending.current?.body !== text) pending.current = { body: text, key: randomId() };
    setBusy(true);
    setError(undefined);
    try {
      setCreated(await setPrice(modelId.trim(), body, pending.current.key));
      pending.current = null;
      onDone();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  const decimal = { inputMode: 'decimal' as const, autoComplete: 'off', pattern: '\\d+(\\.\\d{1,6})?' };
  return (
    <Section title="New price version">
      <form onSubmit={submit} class="stack narrow">
        <label for="price-model">Model id</label>
        <input id="price-model" name="modelId" list="price-models" required maxLength={128} value={modelId} onInput={(e) => setModelId(e.currentTarget.value)} />
        <datalist id="price-models">
          {models.map((m) => (
            <option key={m} value={m} />
          ))}
        </datalist>
        <label for="price-input">Input, credits per 1M tokens</label>
        <input id="price-input" name="inputPricePer1M" required {...decimal} value={input} onInput={(e) => setInput(e.currentTarget.value)} />
        <label for="price-cached">Cached input, credits per 1M tokens (optional; default: the input price)</label>
        <input id="price-cached" name="cachedInputPricePer1M" {...decimal} value={cached} onInput={(e) => setCached(e.currentTarget.value)} />
        <label for="price-output">Output, credits per 1M tokens</label>
        <input id="price-output" name="outputPricePer1M" required {...decimal} value={output} onInput={(e) => setOutput(e.currentTarget.value)} />
        <ErrorBox error={error} />
        <button type="submit" disabled={busy}>
          {busy ? 'Saving…' : 'Create version (effective now)'}
        </button>
      </form>
      <div aria-live="polite">
        {created && (
          <p class="ok" data-testid="price-result">
            {created.modelId} is now at version {created.priceVersion}, effective <Time iso={created.effectiveFrom} />.
          </p>
        )}
      </div>
    </Section>
  );
}
