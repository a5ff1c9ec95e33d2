import type { FunctionComponent } from 'preact';
import type { Me } from '../api';
import { BudgetsPage } from './budgets';
import { EventsPage } from './events';
import { OverviewPage } from './overview';
import { PricesPage } from './prices';
import { SessionsPage } from './sessions';
import { UserPage } from './user';
import { UsersPage } from './users';
import { WebhookPage, WebhooksPage } from './webhooks';

export type Role = 'supervisor' | 'admin';

export interface PageProps {
  /** The route's captured parts, decoded (e.g. the user id of #/users/:id). */
  params: string[];
  me: Me;
  navigate: (hash: string) => void;
}

export interface PageDef {
  /** Hash route, e.g. /users/:id (`:name` captures one path segment). */
  path: string;
  title: string;
  /** Shown in the navigation with this label (pages reached through links have none). */
  nav?: string;
  /** Lowest role that may open it; others see a refusal instead. */
  role: Role;
  component: FunctionComponent<PageProps>;
}

/**
 * Every page of the console. Adding a page is one file in this folder plus one entry here (see
 * docs/console.md).
 */
export const pages: PageDef[] = [
  { path: '/', title: 'Overview', nav: 'Overview', role: 'admin', component: OverviewPage },
  { path: '/users', title: 'Users', nav: 'Users', role: 'supervisor', component: UsersPage },
  { path: '/users/:id', title: 'User', role: 'supervisor', component: UserPage },
  { path: '/sessions', title: 'Active sessions', nav: 'Sessions', role: 'admin', component: SessionsPage },
  { path: '/prices', title: 'Prices', nav: 'Prices', role: 'supervisor', component: PricesPage },
  { path: '/budgets', title: 'Budgets', nav: 'Budgets', role: 'supervisor', component: BudgetsPage },
  { path: '/webhooks', title: 'Webhooks', nav: 'Webhooks', role: 'admin', component: WebhooksPage },
  { path: '/webhooks/:id', title: 'Webhook', role: 'admin', component: WebhookPage },
  { path: '/events', title: 'Events', nav: 'Events', role: 'admin', component: EventsPage },
];

/** The page for a hash (`#/users/alice`) and its decoded parameters; unknown routes get undefined. */
export function matchRoute(hash: string): { page: PageDef; params: string[] } | undefined {
  const path = hash.replace(/^#/, '') || '/';
  const parts = path.split('/').filter(Boolean);
  for (const page of pages) {
    const pattern = page.path.split('/').filter(Boolean);
    if (pattern.length !== parts.length) continue;
    const params: string[] = [];
    const ok = pattern.every((segment, i) => {
      if (segment.startsWith(':')) {
        try {
          params.push(decodeURIComponent(parts[i]));
          return true;
        } catch {
          return false;
        }
      }
      return segment === parts[i];
    });
    if (ok) return { page, params };
  }
  return undefined;
}

export const roleAllows = (role: string, needed: Role) => role === 'admin' || (role === 'supervisor' && needed === 'supervisor');
