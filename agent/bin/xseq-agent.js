#!/usr/bin/env node
// Runs the TypeScript agent through tsx, so the installed command needs no
// separate build step.
import { register } from 'tsx/esm/api';

register();
await import('../cli.ts');
