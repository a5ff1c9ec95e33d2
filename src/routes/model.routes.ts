import { ModelController } from '../controllers/model.controller';
import {
  importPricesBody,
  importPricesResponse,
  modelIdParams,
  modelListResponse,
  modelPriceSchema,
  modelVersionsResponse,
  putPriceBody,
} from '../schemas/model.schemas';
import { listQuery } from '../schemas/common';
import type { Services } from '../services';
import { route, type RouteSpec } from './route-table';

/** /api/models (issue #3). */
export function modelRoutes(services: Services): RouteSpec[] {
  const controller = new ModelController(services.prices);
  return [
    route({
      method: 'get',
      path: '/api/models',
      summary: 'The price version of every model in effect now, in credits per 1M tokens of each kind',
      tags: ['Models'],
      access: 'user',
      responses: { 200: { description: 'Prices', schema: modelListResponse } },
      handle: controller.list,
    }),
    route({
      method: 'post',
      path: '/api/models/import',
      summary: 'Import a price list in LiteLLM\u2019s shape: a new version only for models whose prices changed',
      tags: ['Models'],
      access: 'admin',
      request: { body: importPricesBody },
      responses: { 200: { description: 'What was created, left unchanged and skipped', schema: importPricesResponse } },
      errors: ['VALIDATION_ERROR'],
      handle: controller.import,
    }),
    route({
      method: 'get',
      path: '/api/models/:modelId/versions',
      summary: 'Every price version of a model, oldest first, including those that take effect later',
      tags: ['Models'],
      access: 'user',
      request: { params: modelIdParams, query: listQuery },
      responses: { 200: { description: 'Versions', schema: modelVersionsResponse } },
      errors: ['VALIDATION_ERROR', 'NOT_FOUND'],
      handle: controller.versions,
    }),
    route({
      method: 'put',
      path: '/api/models/:modelId',
      summary: 'Set a model\u2019s price: a new version, effective now or at effectiveFrom (earlier versions are kept)',
      tags: ['Models'],
      access: 'admin',
      request: { params: modelIdParams, body: putPriceBody },
      responses: {
        200: { description: 'New price version of an existing model', schema: modelPriceSchema },
        201: { description: 'First price of a new model', schema: modelPriceSchema },
      },
      errors: ['VALIDATION_ERROR'],
      handle: controller.put,
    }),
  ];
}
