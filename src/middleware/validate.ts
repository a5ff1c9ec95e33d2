import type { RequestHandler } from 'express';
import type { ZodError, ZodType } from 'zod';
import { AppError } from '../lib/errors';
import { findTextIssues, MAX_TEXT_ISSUES } from '../schemas/text';

export interface ValidationProblem {
  location: 'body' | 'query' | 'params' | 'headers';
  path: string;
  message: string;
}

export function problemsOf(location: ValidationProblem['location'], error: ZodError): ValidationProblem[] {
  return error.issues.flatMap((issue) => {
    const at = issue.path.map(String);
    // An unknown field is named by its own path, one problem each (zod reports them together at the parent).
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => ({ location, path: [...at, key].join('.'), message: 'is not a known field of this request' }));
    }
    return [{ location, path: at.join('.'), message: issue.message }];
  });
}

const LOCATIONS = ['params', 'query', 'body'] as const;

/**
 * Parses body, query and params with the route's schemas and reports every problem at once. Every string
 * (keys included) is first checked for NUL, C0 controls and lone surrogates (src/schemas/text.ts).
 * Parsed values land on `req.valid`; handlers never read raw input.
 */
export function validate(schemas: { body?: ZodType; query?: ZodType; params?: ZodType }): RequestHandler {
  return (req, _res, next) => {
    const problems: ValidationProblem[] = [];
    const valid: Express.Request['valid'] = { body: undefined, query: {}, params: {} };
    for (const location of LOCATIONS) {
      const schema = schemas[location];
      const raw: unknown = (location === 'body' ? req.body : req[location]) ?? {};
      // Hostile text is refused in every part, a part without a schema included (e.g. a stray query string).
      const textIssues = findTextIssues(raw);
      for (const issue of textIssues) problems.push({ location, path: issue.path.map(String).join('.'), message: issue.message });
      if (!schema) {
        // A route that takes no query parameters refuses any (a misspelt ?userId= must not silently answer
        // for the caller instead, as unknown body fields are refused); one that takes no body refuses fields
        // in one (an empty object is no fields), and any body that is not an object.
        if (location === 'query') {
          for (const key of Object.keys(raw as object)) problems.push({ location, path: key, message: 'is not a parameter of this route' });
        } else if (location === 'body') {
          if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) problems.push({ location, path: '', message: 'this route takes no request body' });
          else for (const key of Object.keys(raw)) problems.push({ location, path: key, message: 'is not a known field of this request' });
        }
        continue;
      }
      // Already refused; zod must not recurse through input nested too deep, nor through what a walk that
      // stopped at its issue limit left unchecked (it may nest too deep further on).
      if (textIssues.length >= MAX_TEXT_ISSUES || textIssues.some((issue) => issue.tooDeep)) continue;
      const result = schema.safeParse(raw);
      if (result.success) valid[location] = result.data as never;
      else problems.push(...problemsOf(location, result.error));
    }
    if (problems.length > 0) {
      return next(new AppError('VALIDATION_ERROR', 'The request is not valid', { problems }));
    }
    req.valid = valid;
    next();
  };
}
