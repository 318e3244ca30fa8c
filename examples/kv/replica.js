#!/usr/bin/env node
// Runs the TypeScript replica through tsx, so an installed checkout needs no
// build step (deploy/systemd/xseq-replica@.service starts this file).
import { register } from 'tsx/esm/api';

register();
await import('./replica.ts');
