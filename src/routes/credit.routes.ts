import { CreditController } from '../controllers/credit.controller';
import { errorResponse } from '../schemas/common';
import {
  allocateBody,
  allocateResponse,
  balanceSchema,
  calculateBody,
  calculateResponse,
  checkBody,
  checkResponse,
  transactionsQuery,
  transactionsResponse,
  userIdParams,
} from '../schemas/credit.schemas';
import type { Services } from '../services';
import { route, type RouteSpec } from './route-table';

/** /api/credits/* (issue #3). */
export function creditRoutes(services: Services): RouteSpec[] {
  const controller = new CreditController(services.credits);
  return [
    route({
      method: 'get',
      path: '/api/credits/balance',
      summary: 'The caller\u2019s balance: available, reserved by active sessions, expiring soon, allocations',
      tags: ['Credits'],
      access: 'user',
      mirrorsUser: true,
      responses: { 200: { description: 'Balance', schema: balanceSchema } },
      handle: controller.balance,
    }),
    route({
      method: 'get',
      path: '/api/credits/balance/:userId',
      summary: 'Any user\u2019s balance',
      tags: ['Credits'],
      access: 'supervisor',
      request: { params: userIdParams },
      responses: {
        200: { description: 'Balance', schema: balanceSchema },
        404: { description: 'User never seen', schema: errorResponse },
      },
      errors: ['NOT_FOUND'],
      handle: controller.balanceOf,
    }),
    route({
      method: 'post',
      path: '/api/credits/check',
      summary: 'Whether the caller\u2019s available credits cover an amount or the cost of tokens',
      tags: ['Credits'],
      access: 'user',
      request: { body: checkBody },
      responses: { 200: { description: 'Result', schema: checkResponse } },
      errors: ['VALIDATION_ERROR', 'UNKNOWN_MODEL'],
      handle: controller.check,
    }),
    route({
      method: 'post',
      path: '/api/credits/calculate',
      summary: 'Cost of tokens at the model\u2019s current price (rounded up to the micro-credit)',
      tags: ['Credits'],
      access: 'user',
      request: { body: calculateBody },
      responses: { 200: { description: 'Cost', schema: calculateResponse } },
      errors: ['VALIDATION_ERROR', 'UNKNOWN_MODEL'],
      handle: controller.calculate,
    }),
    route({
      method: 'post',
      path: '/api/credits/allocate',
      summary: 'Grant credits to a user (created if unknown); idempotent with Idempotency-Key',
      tags: ['Credits'],
      access: 'supervisor',
      idempotent: true,
      request: { body: allocateBody },
      responses: { 201: { description: 'The new allocation and the user\u2019s balance', schema: allocateResponse } },
      errors: ['VALIDATION_ERROR', 'IDEMPOTENCY_KEY_REUSED', 'IDEMPOTENCY_IN_PROGRESS'],
      handle: controller.allocate,
    }),
    route({
      method: 'get',
      path: '/api/credits/transactions',
      summary: 'The append-only ledger of the caller (or, for supervisors and admins, of ?userId=), newest first',
      tags: ['Credits'],
      access: 'user',
      request: { query: transactionsQuery },
      responses: { 200: { description: 'Ledger entries', schema: transactionsResponse } },
      errors: ['VALIDATION_ERROR', 'NOT_FOUND'],
      handle: controller.transactions,
    }),
  ];
}
