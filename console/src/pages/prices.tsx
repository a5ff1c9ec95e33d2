import { useRef, useState } from 'preact/hooks';
import { api, randomId } from '../api';
import { Credits, DataTable, ErrorBox, Section, Time, localInputToIso, useAsync, useIdempotentAction } from '../components';
import type { PageProps } from '.';

type Price = Awaited<ReturnType<typeof setPrice>>;
type PriceBody = { inputPricePer1M: string; outputPricePer1M: string; cachedInputPricePer1M?: string; effectiveFrom?: string };
const setPrice = (modelId: string, body: PriceBody, idempotencyKey: string) =>
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
      <VersionsSection models={(prices.data ?? []).map((p) => p.modelId)} version={version} />
      {me.role === 'admin' ? (
        <>
          <NewVersionForm models={(prices.data ?? []).map((p) => p.modelId)} onDone={() => setVersion((v) => v + 1)} />
          <ImportSection current={prices.data ?? []} onDone={() => setVersion((v) => v + 1)} />
        </>
      ) : (
        <p class="notice" role="note">
          Setting prices and importing a price list need the admin role; your token is a supervisor&rsquo;s.
        </p>
      )}
    </>
  );
}

/** Every version of one model, oldest first, including those that take effect later. */
function VersionsSection({ models, version }: { models: string[]; version: number }) {
  const [draft, setDraft] = useState('');
  const [modelId, setModelId] = useState('');
  const versions = useAsync(
    () => (modelId ? api.call('get', '/api/models/{modelId}/versions', { params: { modelId }, query: { limit: 500 } }) : Promise.resolve(null)),
    [modelId, version],
  );
  return (
    <Section title="Versions of a model">
      <form
        class="range"
        onSubmit={(e) => {
          e.preventDefault();
          setModelId(draft.trim());
        }}
      >
        <label for="versions-model">
          Show versions of model
          <input id="versions-model" list="price-models-all" required autoComplete="off" value={draft} onInput={(e) => setDraft(e.currentTarget.value)} />
        </label>
        <datalist id="price-models-all">
          {models.map((m) => (
            <option key={m} value={m} />
          ))}
        </datalist>
        <button type="submit">Show versions</button>
      </form>
      <ErrorBox error={versions.error} />
      {versions.data && (
        <DataTable
          caption={`Price versions of ${versions.data.modelId}, oldest first, credits per 1M tokens`}
          rows={versions.data.data}
          rowKey={(p) => String(p.priceVersion)}
          empty="No versions"
          columns={[
            { header: 'Version', numeric: true, cell: (p) => String(p.priceVersion) },
            { header: 'Effective from', cell: (p) => <Time iso={p.effectiveFrom} /> },
            { header: 'State', cell: (p) => (p.inEffect ? <strong>in effect</strong> : Date.parse(p.effectiveFrom) > Date.now() ? 'scheduled' : 'superseded') },
            { header: 'Input', numeric: true, cell: (p) => <Credits value={p.inputPricePer1M} /> },
            { header: 'Cached input', numeric: true, cell: (p) => <Credits value={p.cachedInputPricePer1M} /> },
            { header: 'Cache write', numeric: true, cell: (p) => <Credits value={p.cacheWritePricePer1M} /> },
            { header: 'Output', numeric: true, cell: (p) => <Credits value={p.outputPricePer1M} /> },
            { header: 'Reasoning', numeric: true, cell: (p) => <Credits value={p.reasoningPricePer1M} /> },
          ]}
        />
      )}
    </Section>
  );
}

/**
 * A LiteLLM price list (model_prices_and_context_window.json): a dry run first shows which models would
 * get a new version, which are unchanged and which are skipped; "Apply" sends the same list for real.
 */
function ImportSection({ current, onDone }: { current: Price[]; onDone: () => void }) {
  type ImportBody = { format: 'litellm'; creditsPerUsd: string; prices: Record<string, unknown>; dryRun: boolean };
  const [text, setText] = useState('');
  const [creditsPerUsd, setCreditsPerUsd] = useState('100');
  const [parseError, setParseError] = useState<unknown>();
  const [preview, setPreview] = useState<{ body: ImportBody; result: Awaited<ReturnType<typeof importPrices>> } | null>(null);
  const apply = useIdempotentAction((body: ImportBody, idempotencyKey: string) => importPrices(body, idempotencyKey));
  const [dryBusy, setDryBusy] = useState(false);

  const dryRun = async (e: Event) => {
    e.preventDefault();
    setParseError(undefined);
    setPreview(null);
    apply.reset();
    let prices: unknown;
    try {
      prices = JSON.parse(text);
      if (!prices || typeof prices !== 'object' || Array.isArray(prices)) throw new Error('The price list must be a JSON object of model id to entry');
    } catch (err) {
      setParseError(err);
      return;
    }
    const body: ImportBody = { format: 'litellm', creditsPerUsd: creditsPerUsd.trim(), prices: prices as Record<string, unknown>, dryRun: true };
    setDryBusy(true);
    try {
      setPreview({ body, result: await importPrices(body, randomId()) });
    } catch (err) {
      setParseError(err);
    } finally {
      setDryBusy(false);
    }
  };
  const byId = new Map(current.map((p) => [p.modelId, p]));
  const entry = (modelId: string) => (preview?.body.prices[modelId] ?? {}) as Record<string, unknown>;
  const usd = (value: unknown) => (typeof value === 'number' || typeof value === 'string' ? String(value) : '');

  return (
    <Section title="Import a LiteLLM price list">
      <form onSubmit={dryRun} class="stack">
        <label for="import-prices">Price list (JSON in LiteLLM&rsquo;s model_prices_and_context_window.json shape, USD per token)</label>
        <textarea id="import-prices" rows={8} spellcheck={false} required value={text} onInput={(e) => (setText(e.currentTarget.value), setPreview(null))} />
        <label for="import-rate">Credits per US dollar</label>
        <input id="import-rate" inputMode="decimal" autoComplete="off" required value={creditsPerUsd} onInput={(e) => (setCreditsPerUsd(e.currentTarget.value), setPreview(null))} />
        <ErrorBox error={parseError} />
        <button type="submit" disabled={dryBusy}>
          {dryBusy ? 'Checking…' : 'Preview (dry run)'}
        </button>
      </form>
      {preview && (
        <div data-testid="import-preview">
          <p aria-live="polite">
            Dry run: {preview.result.created.length} model{preview.result.created.length === 1 ? '' : 's'} would get a new version, {preview.result.unchanged}{' '}
            unchanged, {preview.result.skipped.length} skipped. Nothing was written.
          </p>
          <DataTable
            caption="Models that would get a new version: current price (credits per 1M tokens) and the imported entry (USD per token)"
            rows={preview.result.created}
            rowKey={(c) => c.modelId}
            empty="No model would change"
            columns={[
              { header: 'Model', cell: (c) => c.modelId },
              { header: 'Current version', numeric: true, cell: (c) => (byId.get(c.modelId) ? String(byId.get(c.modelId)!.priceVersion) : 'new model') },
              { header: 'Current input', numeric: true, cell: (c) => (byId.get(c.modelId) ? <Credits value={byId.get(c.modelId)!.inputPricePer1M} /> : '') },
              { header: 'Current output', numeric: true, cell: (c) => (byId.get(c.modelId) ? <Credits value={byId.get(c.modelId)!.outputPricePer1M} /> : '') },
              { header: 'Imported input (USD/token)', numeric: true, cell: (c) => usd(entry(c.modelId).input_cost_per_token) },
              { header: 'Imported output (USD/token)', numeric: true, cell: (c) => usd(entry(c.modelId).output_cost_per_token) },
              { header: 'New version', numeric: true, cell: (c) => String(c.priceVersion) },
            ]}
          />
          {preview.result.skipped.length > 0 && (
            <DataTable
              caption="Skipped entries"
              rows={preview.result.skipped}
              rowKey={(s) => s.modelId}
              empty=""
              columns={[
                { header: 'Model', cell: (s) => s.modelId },
                { header: 'Reason', cell: (s) => s.reason },
              ]}
            />
          )}
          <ErrorBox error={apply.error} />
          <button
            type="button"
            disabled={apply.busy || preview.result.created.length === 0}
            onClick={async () => {
              if (await apply.run({ ...preview.body, dryRun: false })) onDone();
            }}
          >
            {apply.busy ? 'Importing…' : `Apply: create ${preview.result.created.length} version${preview.result.created.length === 1 ? '' : 's'}`}
          </button>
        </div>
      )}
      <div aria-live="polite">
        {apply.result && (
          <p class="ok" data-testid="import-result">
            Imported: {apply.result.created.map((c) => `${c.modelId} v${c.priceVersion}`).join(', ') || 'nothing new'}; {apply.result.unchanged} unchanged,{' '}
            {apply.result.skipped.length} skipped.
          </p>
        )}
      </div>
    </Section>
  );
}

const importPrices = (body: { format: 'litellm'; creditsPerUsd: string; prices: Record<string, unknown>; dryRun: boolean }, idempotencyKey: string) =>
  api.call('post', '/api/models/import', { body, idempotencyKey });

/** A new price version, effective now or at a later time (earlier versions are kept by the service). */
function NewVersionForm({ models, onDone }: { models: string[]; onDone: () => void }) {
  const [modelId, setModelId] = useState('');
  const [input, setInput] = useState('');
  const [cached, setCached] = useState('');
  const [output, setOutput] = useState('');
  const [effectiveFrom, setEffectiveFrom] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const [created, setCreated] = useState<Price | null>(null);
  const pending = useRef<{ body: string; key: string } | null>(null);

  const submit = async (e: Event) => {
    e.preventDefault();
    const body: PriceBody = { inputPricePer1M: input.trim(), outputPricePer1M: output.trim(), ...(cached.trim() ? { cachedInputPricePer1M: cached.trim() } : {}) };
    if (effectiveFrom) body.effectiveFrom = localInputToIso(effectiveFrom);
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
        <label for="price-effective">Effective from (optional; your time zone; default: now)</label>
        <input id="price-effective" name="effectiveFrom" type="datetime-local" value={effectiveFrom} onInput={(e) => setEffectiveFrom(e.currentTarget.value)} />
        <ErrorBox error={error} />
        <button type="submit" disabled={busy}>
          {busy ? 'Saving…' : effectiveFrom ? 'Create version (effective later)' : 'Create version (effective now)'}
        </button>
      </form>
      <div aria-live="polite">
        {created && (
          <p class="ok" data-testid="price-result">
            {Date.parse(created.effectiveFrom) > Date.now() ? (
              <>
                {created.modelId} gets version {created.priceVersion}, effective <Time iso={created.effectiveFrom} />.
              </>
            ) : (
              <>
                {created.modelId} is now at version {created.priceVersion}, effective <Time iso={created.effectiveFrom} />.
              </>
            )}
          </p>
        )}
      </div>
    </Section>
  );
}
