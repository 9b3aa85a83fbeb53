import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from '../src/registry.js';
import { assertUserError } from './helpers.js';

test('registry lists known keys when a key is unknown', () => {
  const r = new Registry<number>('model').register('mlp', 1).register('cnn', 2);
  assert.equal(r.get('cnn'), 2);
  assertUserError(() => r.get('cnm'), 'unknown model `cnm`; known: cnn, mlp');
  assert.throws(() => r.register('mlp', 3), /registered twice/);
});
