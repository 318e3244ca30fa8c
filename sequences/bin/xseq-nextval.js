#!/usr/bin/env node
// Runs the TypeScript CLI through tsx, as agent/bin/xseq-agent.js does.
import { register } from 'tsx/esm/api';

register();
await import('../cli.ts');
