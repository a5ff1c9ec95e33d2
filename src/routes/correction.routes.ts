import { CorrectionController } from '../controllers/correction.controller';
import {
  adjustBody,
  adjustResponse,
  allocationIdParams,
  createScheduleBody,
  scheduleIdParams,
  scheduleSchema,
  schedulesPage,
  schedulesQuery,
  refundBody,
  refundResponse,
  revokeBody,
  revokeResponse,
  usageRecordIdParams,
} from '../schemas/correction.schemas';
import { errorResponse } from '../schemas/common';
import type { Services } from '../services';
import type { RouteSpec } from './route-table';

/** Corrections (issue 16): adjust, revoke a lot, refund a usage record. */
export function correctionRoutes(services: Services): RouteSpec[] {
  const controller = new CorrectionController(services.corrections);
  return [
    {
      method: 'post',
      path: '/api/credits/adjust',
      summary: 'Adjust a user\u2019s credits: positive adds a lot (201), negative takes from available lots in consumption order (200)',
      tags: ['Corrections'],
      access: 'supervisor',
      idempotent: true,
      request: { body: adjustBody },
      responses: {
        200: { description: 'Negative adjustment made', schema: adjustResponse },
        201: { description: 'Positive adjustment: a new lot', schema: adjustResponse },
        402: { description: 'The available credits do not cover a negative adjustment (nothing changed)', schema: errorResponse },
        404: { description: 'Negative adjustment of a user never seen', schema: errorResponse },
      },
      errors: ['VALIDATION_ERROR', 'INSUFFICIENT_CREDITS', 'NOT_FOUND', 'IDEMPOTENCY_KEY_REUSED', 'IDEMPOTENCY_IN_PROGRESS'],
      handler: controller.adjust,
    },
    {
      method: 'post',
      path: '/api/credits/allocations/:id/revoke',
      summary: 'Void what is left of a lot (or part of it); credits held by active sessions are reported, not revoked',
      tags: ['Corrections'],
      access: 'supervisor',
      idempotent: true,
      request: { params: allocationIdParams, body: revokeBody },
      responses: {
        200: { description: 'Revoked', schema: revokeResponse },
        404: { description: 'Unknown allocation', schema: errorResponse },
      },
      errors: ['VALIDATION_ERROR', 'NOT_FOUND', 'IDEMPOTENCY_KEY_REUSED', 'IDEMPOTENCY_IN_PROGRESS'],
      handler: controller.revoke,
    },
    {
      method: 'post',
      path: '/api/usage/records/:id/refund',
      summary: 'Refund a usage record: unpaid credits are forgiven first, then charged credits go back to their lots',
      tags: ['Corrections'],
      access: 'supervisor',
      idempotent: true,
      request: { params: usageRecordIdParams, body: refundBody },
      responses: {
        200: { description: 'The record with refundedCredits', schema: refundResponse },
        404: { description: 'Unknown usage record', schema: errorResponse },
        409: { description: 'The record\u2019s session expired and may still be finalized late', schema: errorResponse },
      },
      errors: ['VALIDATION_ERROR', 'NOT_FOUND', 'CONFLICT', 'IDEMPOTENCY_KEY_REUSED', 'IDEMPOTENCY_IN_PROGRESS'],
      handler: controller.refund,
    },
    {
      method: 'post',
      path: '/api/credits/schedules',
      summary: 'Create a recurring grant: credits once per calendar period (day, week, month) in a time zone',
      tags: ['Corrections'],
      access: 'supervisor',
      idempotent: true,
      request: { body: createScheduleBody },
      responses: { 201: { description: 'The schedule', schema: scheduleSchema } },
      errors: ['VALIDATION_ERROR', 'IDEMPOTENCY_KEY_REUSED', 'IDEMPOTENCY_IN_PROGRESS'],
      handler: controller.createSchedule,
    },
    {
      method: 'get',
      path: '/api/credits/schedules',
      summary: 'Recurring grants, oldest first (optionally of one user)',
      tags: ['Corrections'],
      access: 'supervisor',
      request: { query: schedulesQuery },
      responses: { 200: { description: 'A page of schedules', schema: schedulesPage } },
      errors: ['VALIDATION_ERROR'],
      handler: controller.listSchedules,
    },
    {
      method: 'delete',
      path: '/api/credits/schedules/:id',
      summary: 'Stop a recurring grant (grants already made stay)',
      tags: ['Corrections'],
      access: 'supervisor',
      request: { params: scheduleIdParams },
      responses: {
        200: { description: 'The stopped schedule (deletedAt set)', schema: scheduleSchema },
        404: { description: 'Unknown or already deleted schedule', schema: errorResponse },
      },
      errors: ['VALIDATION_ERROR', 'NOT_FOUND'],
      handler: controller.deleteSchedule,
    },
  ];
}
