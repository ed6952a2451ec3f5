import { expect, it } from 'vitest';
import { parseRoute } from './router';

it('parses routes', () => {
  expect(parseRoute('/')).toEqual({ name: 'home' });
  expect(parseRoute('/c/abc')).toEqual({ name: 'chat', id: 'abc' });
  expect(parseRoute('/invite/XYZ')).toEqual({ name: 'invite', code: 'XYZ' });
  expect(parseRoute('/people')).toEqual({ name: 'people' });
  expect(parseRoute('/nope/x')).toEqual({ name: 'home' });
  expect(parseRoute('/settings/bots')).toEqual({ name: 'bots' });
  expect(parseRoute('/admin')).toEqual({ name: 'admin', tab: 'users' });
  expect(parseRoute('/admin/reports')).toEqual({ name: 'admin', tab: 'reports' });
  expect(parseRoute('/admin/whatever')).toEqual({ name: 'admin', tab: 'users' });
  expect(parseRoute('/register')).toEqual({ name: 'home' });
});
