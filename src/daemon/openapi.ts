// The OpenAPI 3.1 document, made from the route table and the zod schemas that validate requests.
import { z } from 'zod';
import { errorSchema } from './schemas.js';
import { routes } from './routes.js';

const ERRORS: Record<string, string> = {
  '400': 'bad JSON, a schema violation (field names the key), or input the CLI refuses (exit 2)',
  '401': 'no token or a wrong one: nothing changed',
  '404': 'unknown network, port or forward',
  '500': 'a failure on the host, rolled back (the CLI exit 1)',
};
const WRITE_ERRORS: Record<string, string> = {
  '403': 'a cookie-authenticated write without X-Kvmnet-Csrf',
  '409': 'conflicts with what exists',
  '413': 'request body over 64 KiB',
  '415': 'request body not application/json',
  '503': 'the state lock is held by another kvmnet process for too long',
};

function schemaOf(s: z.ZodType): Record<string, unknown> {
  const j = z.toJSONSchema(s, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  delete j.$schema;
  return j;
}

export function openApiDocument(version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  const errorRef = { $ref: '#/components/schemas/Error' };
  for (const r of routes) {
    const write = r.method !== 'GET';
    const params = [...r.path.matchAll(/\{(\w+)\}/g)].map((m) => ({
      name: m[1],
      in: 'path',
      required: true,
      schema: { type: 'string' },
      ...(m[1] === 'ref' ? { description: 'the tap (vnet3) or the port id (kvm1/net0, URL-encoded)' } : {}),
    }));
    const query = Object.entries(r.query ?? {}).map(([name, description]) => ({
      name,
      in: 'query',
      required: false,
      description,
      schema: { type: 'string' },
    }));
    if (write)
      query.push({
        name: 'dryRun',
        in: 'query',
        required: false,
        description: '1: answer the plan and change nothing',
        schema: { type: 'string' },
      });
    const ok = r.created ? '201' : '200';
    const responses: Record<string, unknown> = {
      [ok]: {
        description: r.cli ? `as \`${r.cli}\` prints it` : 'OK',
        content: {
          'application/json': { schema: r.answer ? schemaOf(r.answer) : { type: ['object', 'array'] } },
        },
      },
    };
    if (r.created) responses['200'] = { description: 'the plan, on ?dryRun=1' };
    for (const [code, description] of Object.entries({ ...ERRORS, ...(write ? WRITE_ERRORS : {}) }))
      responses[code] = { description, content: { 'application/json': { schema: errorRef } } };
    const op: Record<string, unknown> = {
      operationId: `${r.method.toLowerCase()}${r.path
        .replace(/^\/api/, '')
        .replace(/\{(\w+)\}/g, 'By-$1')
        .split(/[/-]/)
        .map((w) => (w ? w[0]?.toUpperCase() + w.slice(1) : ''))
        .join('')}`,
      summary: r.summary,
      parameters: [...params, ...query],
      responses,
    };
    if (r.body)
      op.requestBody = { required: true, content: { 'application/json': { schema: schemaOf(r.body) } } };
    (paths[r.path.replace(/^\/api/, '')] ??= {})[r.method.toLowerCase()] = op;
  }
  paths['/events'] = {
    get: {
      operationId: 'getEvents',
      summary:
        'Server-Sent Events: "state" {time, networks, show, leases} on connect and on every change, "stats" {time, links} every second',
      responses: {
        '200': {
          description: 'an event stream',
          content: { 'text/event-stream': { schema: { type: 'string' } } },
        },
        '401': { description: ERRORS['401'], content: { 'application/json': { schema: errorRef } } },
      },
    },
  };
  return {
    openapi: '3.1.0',
    info: {
      title: 'kvmnet',
      version,
      description:
        'Virtual networks of a KVM host: the same engine and JSON as the kvmnet CLI (see docs/api.md and docs/cli.md).',
    },
    servers: [{ url: '/api' }],
    security: [{ bearer: [] }, { cookie: [] }],
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'the token in STATE_DIR/api-token' },
        cookie: {
          type: 'apiKey',
          in: 'cookie',
          name: 'kvmnet_session',
          description: 'set by opening /?token=TOKEN; writes also need the X-Kvmnet-Csrf header',
        },
      },
      schemas: { Error: schemaOf(errorSchema) },
    },
    paths,
  };
}
