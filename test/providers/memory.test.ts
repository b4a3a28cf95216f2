import test from 'ava';
import { MemoryProvider } from '../../providers/memory/index.js';
import { providerContract } from './contract.js';

providerContract(test, { name: 'memory', make: async () => new MemoryProvider(), nodeset: 'contract-mem', authorizedKey: 'ssh-ed25519 AAAA test' });
