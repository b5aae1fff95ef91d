// The `host:port` config field every service section uses (IPv6 in brackets).
import { z } from 'zod';

export const hostPortSchema = z
  .string()
  .regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'expected host:port, e.g. 127.0.0.1:50051');
