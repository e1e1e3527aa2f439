/**
 * RFC 9457 problem details for every error the API returns, with a stable type per kind.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import type { Rejection } from '../../domain/index.ts';
import { EventIdConflictError, WrongExpectedVersionError } from '../../eventstore/index.ts';

export type ProblemBody = {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance?: string;
  field?: string | null;
  currentState?: string;
  details?: unknown;
};

const statusByKind: Record<Rejection['kind'], number> = { invalid: 400, 'not-found': 404, conflict: 409, 'no-capacity': 422 };
const titleByStatus: Record<number, string> = {
  400: 'Bad Request',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

export function problem(status: number, code: string, detail: string, extra: Partial<ProblemBody> = {}): ProblemBody {
  return { type: `urn:vcp:problem:${code}`, title: titleByStatus[status] ?? 'Error', status, detail, ...extra };
}

export function rejectionProblem(rejection: Rejection): ProblemBody {
  const { currentState, ...rest } = (rejection.details ?? {}) as { currentState?: unknown; [key: string]: unknown };
  const body = problem(statusByKind[rejection.kind], rejection.code, rejection.message);
  if (rejection.field !== null) body.field = rejection.field;
  if (typeof currentState === 'string') body.currentState = currentState;
  if (Object.keys(rejection.details ?? {}).length > 0 && Object.keys(rest).length > 0) body.details = rest;
  return body;
}

export function sendProblem(reply: FastifyReply, request: FastifyRequest, body: ProblemBody): FastifyReply {
  return reply
    .code(body.status)
    .header('content-type', 'application/problem+json; charset=utf-8')
    .send(JSON.stringify({ ...body, instance: body.instance ?? request.url }));
}

type AjvError = { instancePath?: string; keyword?: string; params?: Record<string, unknown>; message?: string };

/** The field a validation error is about, as a JSON pointer into the request part it names. */
function validationField(error: AjvError, context: string | undefined): string {
  const base = `${context === 'body' ? '' : `/${context ?? 'body'}`}${error.instancePath ?? ''}`;
  const params = error.params ?? {};
  const child = params.missingProperty ?? params.additionalProperty;
  return typeof child === 'string' ? `${base}/${child}` : base || '/';
}

/** Maps any error thrown in a route to a problem; never leaks a 500 for bad input. */
export function errorHandler(error: FastifyError & { validationContext?: string }, request: FastifyRequest, reply: FastifyReply) {
  if (error.validation && error.validation.length > 0) {
    const first = error.validation[0] as AjvError;
    const field = validationField(first, error.validationContext);
    const params = first.params ?? {};
    const what =
      first.keyword === 'additionalProperties'
        ? `unknown property ${String(params.additionalProperty)}`
        : first.keyword === 'required'
          ? `${String(params.missingProperty)} is required`
          : (first.message ?? 'is invalid');
    return sendProblem(reply, request, problem(400, 'invalid-input', `${field}: ${what}`, { field }));
  }
  if (error instanceof WrongExpectedVersionError) {
    return sendProblem(reply, request, problem(409, 'version-conflict', `${error.message}; too many concurrent changes, retry`));
  }
  if (error instanceof EventIdConflictError) {
    return sendProblem(reply, request, problem(409, 'event-id-conflict', error.message));
  }
  const code = error.code ?? '';
  if (code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
    return sendProblem(reply, request, problem(415, 'unsupported-media-type', 'send application/json'));
  }
  if (code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    return sendProblem(reply, request, problem(413, 'body-too-large', 'the request body is too large'));
  }
  if (code === 'FST_ERR_CTP_EMPTY_JSON_BODY' || code === 'FST_ERR_CTP_INVALID_JSON_BODY' || error instanceof SyntaxError) {
    return sendProblem(reply, request, problem(400, 'invalid-json', `the body is not valid JSON: ${error.message}`, { field: '/' }));
  }
  const status = error.statusCode ?? 500;
  if (status >= 400 && status < 500) {
    return sendProblem(reply, request, problem(status, 'bad-request', error.message));
  }
  request.log.error({ err: error }, 'unhandled error');
  if (status === 503) return sendProblem(reply, request, problem(503, 'unavailable', error.message));
  return sendProblem(reply, request, problem(500, 'internal', 'an internal error occurred; it has been logged'));
}
