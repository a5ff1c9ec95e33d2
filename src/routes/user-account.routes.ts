import { z } from 'zod';
import { UserAccountController } from '../controllers/user-account.controller';
import type { Services } from '../services';
import { route, type RouteSpec } from './route-table';

export const accountSchema = z.object({
  userId: z.string(),
  email: z.string().nullable(),
  username: z.string().nullable(),
  role: z.enum(['user', 'supervisor', 'admin']),
  orgId: z.string().nullable(),
  createdAt: z.string().datetime(),
});

export function userAccountRoutes(services: Services): RouteSpec[] {
  const controller = new UserAccountController(services.users);
  return [
    route({
      method: 'get',
      path: '/api/me',
      summary: 'The caller, as mirrored from the token',
      tags: ['Accounts'],
      access: 'user',
      responses: { 200: { description: 'The caller', schema: accountSchema } },
      handle: controller.me,
    }),
  ];
}
