// The one place configuration is read. Sources, later wins: built-in
// defaults < YAML file (--config or $SADP_CONFIG) < environment variables
// (SADP_<SECTION>_<KEY>) < command-line flags. One zod schema validates the
// merged result, and any unknown or bad key is an error that names it and
// where it came from. The list of environment variables is derived from the
// schema (ENV_VARS), so manifests and docs can be checked against the code.
// Components own their sections' schemas (defaults and bounds stated once);
// this module composes them.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { SadpError, Status } from './errors.js';
import { tlsConfigSchema } from './tls.js';
import { loaderConfigSchema } from '../loader/index.js';
import { scorerConfigSchema } from '../scorer/index.js';
import { embeddedS3ConfigSchema, s3ConfigSchema } from '../storage/index.js';

const ConfigSchema = z
  .object({
    log: z
      .object({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
      })
      .strict()
      .prefault({}),
    metrics: z
      .object({
        /** Prometheus /metrics port; 0 disables the endpoint. */
        port: z.number().int().min(0).max(65535).default(0),
        host: z.string().min(1).default('127.0.0.1'),
      })
      .strict()
      .prefault({}),
    s3: s3ConfigSchema.prefault({}),
    tls: tlsConfigSchema.prefault({}),
    embeddedS3: embeddedS3ConfigSchema.prefault({}),
    scorer: scorerConfigSchema.prefault({}),
    /** The loader's knobs: declared with their defaults and bounds by the loader (loader/service/options.ts). */
    loader: loaderConfigSchema.prefault({}),
    /** Deadline for graceful shutdown after SIGTERM before streams are cut. */
    shutdownGraceMs: z.number().int().min(0).default(10_000),
  })
  .strict();

export type Config = z.infer<typeof ConfigSchema>;
export type ConfigInput = z.input<typeof ConfigSchema>;

type Leaf = 'string' | 'number' | 'boolean';

function unwrap(schema: z.ZodType): z.ZodType {
  let s = schema;
  for (;;) {
    const def = (s as unknown as { _zod: { def: { type: string; innerType?: z.ZodType } } })._zod.def;
    if ((def.type === 'default' || def.type === 'optional' || def.type === 'prefault') && def.innerType) {
      s = def.innerType;
    } else return s;
  }
}

function leafType(schema: z.ZodType): Leaf {
  const type = (unwrap(schema) as unknown as { _zod: { def: { type: string } } })._zod.def.type;
  if (type === 'number') return 'number';
  if (type === 'boolean') return 'boolean';
  return 'string';
}

const screaming = (key: string): string => key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();

/** Every environment variable the services read, mapped to its config path. */
export const ENV_VARS: Readonly<Record<string, { path: string[]; type: Leaf }>> = (() => {
  const out: Record<string, { path: string[]; type: Leaf }> = {};
  for (const [section, sectionSchema] of Object.entries(ConfigSchema.shape)) {
    const inner = unwrap(sectionSchema as z.ZodType) as unknown as { shape?: Record<string, z.ZodType> };
    if (inner.shape) {
      for (const [key, leaf] of Object.entries(inner.shape)) {
        out[`SADP_${screaming(section)}_${screaming(key)}`] = { path: [section, key], type: leafType(leaf) };
      }
    } else {
      out[`SADP_${screaming(section)}`] = { path: [section], type: leafType(sectionSchema as z.ZodType) };
    }
  }
  return out;
})();

/** Environment variables read outside the schema. */
export const EXTRA_ENV_VARS = ['SADP_CONFIG', 'SADP_DEBUG'] as const;

function configError(message: string): SadpError {
  return new SadpError('SADP_CONFIG_INVALID', message, { status: Status.INVALID_ARGUMENT });
}

function setPath(target: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[path[path.length - 1]!] = value;
}

function merge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) continue;
    const prev = out[k];
    out[k] =
      typeof v === 'object' && v !== null && !Array.isArray(v) && typeof prev === 'object' && prev !== null
        ? merge(prev as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  }
  return out;
}

/**
 * The warning for an environment variable that looks like a setting but is
 * none. Not an error: a shell or pod may carry SADP_* variables meant for
 * another version or tool, and failing every command for them helps nobody.
 */
export function unknownEnvWarning(name: string): string {
  // Suggest the variables of the same section (SADP_S3_ENDPIONT -> SADP_S3_*).
  const section = /^SADP_[A-Z0-9]+_/.exec(name)?.[0];
  const near = section ? Object.keys(ENV_VARS).filter((k) => k.startsWith(section)) : [];
  const hint = near.length > 0 ? `; did you mean one of ${near.join(', ')}?` : '';
  return `ignoring unknown environment variable ${name}: not a sadp setting${hint}`;
}

const warnedEnv = new Set<string>();

function warnOnceToStderr(name: string): void {
  if (warnedEnv.has(name)) return;
  warnedEnv.add(name);
  process.stderr.write(`sadp: warning: ${unknownEnvWarning(name)}\n`);
}

function fromEnv(env: NodeJS.ProcessEnv, onUnknown: (name: string) => void): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith('SADP_') || raw === undefined) continue;
    if ((EXTRA_ENV_VARS as readonly string[]).includes(name)) continue;
    const spec = ENV_VARS[name];
    if (!spec) {
      onUnknown(name);
      continue;
    }
    let value: unknown = raw;
    if (spec.type === 'number') {
      value = Number(raw);
      if (raw.trim() === '' || !Number.isFinite(value))
        throw configError(`${name}=${raw}: expected a number`);
    } else if (spec.type === 'boolean') {
      if (!/^(true|false|1|0)$/i.test(raw)) throw configError(`${name}=${raw}: expected true or false`);
      value = /^(true|1)$/i.test(raw);
    }
    setPath(out, spec.path, value);
  }
  return out;
}

export interface LoadConfigOptions {
  /** YAML file; default $SADP_CONFIG when set. */
  file?: string;
  env?: NodeJS.ProcessEnv;
  /** Values from command-line flags (highest precedence). */
  overrides?: ConfigInput;
  /**
   * Called for each SADP_* variable that is no setting (it is ignored); default:
   * one warning line per variable and process on stderr.
   */
  onUnknownEnv?: (name: string) => void;
}

export function loadConfig(options: LoadConfigOptions = {}): Config {
  const env = options.env ?? process.env;
  const file = options.file ?? env.SADP_CONFIG;
  let fromFile: Record<string, unknown> = {};
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (cause) {
      throw new SadpError('SADP_CONFIG_INVALID', `cannot read config file ${file}`, {
        status: Status.INVALID_ARGUMENT,
        cause,
      });
    }
    let parsed: unknown;
    try {
      parsed = parseYaml(text);
    } catch (cause) {
      throw new SadpError('SADP_CONFIG_INVALID', `${file}: not valid YAML: ${(cause as Error).message}`, {
        status: Status.INVALID_ARGUMENT,
        cause,
      });
    }
    if (parsed !== null && parsed !== undefined) {
      if (typeof parsed !== 'object' || Array.isArray(parsed))
        throw configError(`${file}: expected a mapping at the top`);
      fromFile = parsed as Record<string, unknown>;
    }
  }
  const merged = merge(
    merge(fromFile, fromEnv(env, options.onUnknownEnv ?? warnOnceToStderr)),
    options.overrides ?? {},
  );
  const result = ConfigSchema.safeParse(merged);
  if (!result.success) {
    const where = file ? ` (file ${file}, environment, flags)` : '';
    const problems = result.error.issues.map((issue) => {
      const base = issue.path.join('.');
      if (issue.code === 'unrecognized_keys') {
        return issue.keys.map((k) => `unknown key '${base ? `${base}.` : ''}${k}'`).join('; ');
      }
      return `'${base}': ${issue.message}`;
    });
    throw configError(`invalid configuration${where}: ${problems.join('; ')}`);
  }
  return result.data;
}

/** Splits "host:port" (IPv6 in brackets) for listeners. */
export function splitHostPort(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  const host = address.slice(0, i).replace(/^\[|\]$/g, '');
  return { host, port: Number(address.slice(i + 1)) };
}
