import type { Response } from 'express';
import { send } from '../middleware/idempotency.middleware';
import type { Input } from '../routes/route-table';
import { parseLiteLlm } from '../metering/litellm';
import { toModelPriceJson, type ImportPricesBody, type PutPriceBody } from '../schemas/model.schemas';
import type { Page } from '../schemas/common';
import type { PriceService } from '../services/price.service';

export class ModelController {
  constructor(private readonly prices: PriceService) {}

  /** GET /api/models: the version of every model in effect now. */
  list = async (_input: Input, res: Response) => {
    res.json((await this.prices.list()).map(toModelPriceJson));
  };

  /** GET /api/models/:modelId/versions: a page of versions, oldest first, marking the one in effect now. */
  versions = async ({ params, query }: Input<{ params: { modelId: string }; query: Page }>, res: Response) => {
    const { data, current, nextCursor } = await this.prices.versionPage(params.modelId, query);
    res.json({ modelId: params.modelId, data: data.map((price) => ({ ...toModelPriceJson(price), inEffect: price === current })), nextCursor });
  };

  /** POST /api/models/import (admin): a LiteLLM price list; only changed models get a version. */
  import = async ({ body, caller }: Input<{ body: ImportPricesBody }>, res: Response) => {
    const { entries, skipped } = parseLiteLlm(body.prices, body.creditsPerUsd);
    const result = await this.prices.importPrices(entries, caller.userId, body.dryRun ?? false);
    res.json({ created: result.created, unchanged: result.unchanged, skipped });
  };

  /** PUT /api/models/:modelId (admin): a new price version, effective now or at effectiveFrom. 201 when the model is new. */
  put = async ({ params, body, caller }: Input<{ params: { modelId: string }; body: PutPriceBody }>, res: Response) => {
    const { price, created } = await this.prices.setPrice(
      params.modelId,
      {
        inputPer1M: body.inputPricePer1M,
        outputPer1M: body.outputPricePer1M,
        cachedInputPer1M: body.cachedInputPricePer1M ?? body.inputPricePer1M,
        cacheWritePer1M: body.cacheWritePricePer1M ?? null,
        cacheWrite1hPer1M: body.cacheWrite1hPricePer1M ?? null,
        reasoningPer1M: body.reasoningPricePer1M ?? null,
      },
      caller.userId,
      body.effectiveFrom === undefined ? undefined : new Date(body.effectiveFrom),
    );
    send(res, { effect: created ? 'created' : 'done', body: toModelPriceJson(price) });
  };
}
