import type { Response } from 'express';

const JSON_CONTENT_TYPE = 'application/json; charset=utf-8';

/**
 * res.status(status).json(body) for the hot path's writes. A response to anything but GET or HEAD can never
 * be conditional (no 304), so Express's extra work for it — an ETag hashed over the body, the freshness
 * check, re-parsing the Content-Type to add its charset — buys nothing: the body is written with the same
 * type and length headers and no ETag. GET and HEAD go through res.json unchanged (ETag, If-None-Match, HEAD).
 */
export function writeJson(res: Response, status: number, body: unknown): void {
  const method = res.req.method;
  if (method === 'GET' || method === 'HEAD') {
    res.status(status).json(body);
    return;
  }
  const text = JSON.stringify(body) ?? '';
  res.statusCode = status;
  if (!res.hasHeader('Content-Type')) res.setHeader('Content-Type', JSON_CONTENT_TYPE);
  res.setHeader('Content-Length', Buffer.byteLength(text));
  res.end(text);
}
