import { ModelController } from '../controllers/model.controller';
import { modelIdParams, modelListResponse, modelPriceSchema, putPriceBody } from '../schemas/model.schemas';
import type { Services } from '../services';
import type { RouteSpec } from './route-table';

/** /api/models (issue #3). */
export function modelRoutes(services: Services): RouteSpec[] {
  const controller = new ModelController(services.prices);
  return [
    {
      method: 'get',
      path: '/api/models',
      summary: 'Current price of every model, in credits per 1M tokens',
      tags: ['Models'],
      access: 'user',
      responses: { 200: { description: 'Prices', schema: modelListResponse } },
      handler: controller.list,
    },
    {
      method: 'put',
      path: '/api/models/:modelId',
      summary: 'Set a model\u2019s price: a new version effective now (earlier versions are kept)',
      tags: ['Models'],
      access: 'admin',
      request: { params: modelIdParams, body: putPriceBody },
      responses: {
        200: { description: 'New price version of an existing model', schema: modelPriceSchema },
        201: { description: 'First price of a new model', schema: modelPriceSchema },
      },
      errors: ['VALIDATION_ERROR'],
      handler: controller.put,
    },
  ];
}
