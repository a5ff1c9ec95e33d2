import type { RequestHandler } from 'express';
import { toModelPriceJson, type PutPriceBody } from '../schemas/model.schemas';
import type { PriceService } from '../services/price.service';

export class ModelController {
  constructor(private readonly prices: PriceService) {}

  /** GET /api/models: the current price of every model. */
  list: RequestHandler = async (_req, res) => {
    res.json((await this.prices.list()).map(toModelPriceJson));
  };

  /** PUT /api/models/:modelId (admin): a new price version, effective now. 201 when the model is new. */
  put: RequestHandler = async (req, res) => {
    const body = req.valid.body as PutPriceBody;
    const { price, created } = await this.prices.setPrice(
      req.valid.params.modelId as string,
      { inputPer1M: body.inputPricePer1M, outputPer1M: body.outputPricePer1M, cachedInputPer1M: body.cachedInputPricePer1M ?? body.inputPricePer1M },
      req.auth!.userId,
    );
    res.status(created ? 201 : 200).json(toModelPriceJson(price));
  };
}
