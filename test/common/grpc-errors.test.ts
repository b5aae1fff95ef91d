// A sadp service's error crossing gRPC keeps its stable code, once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { SadpError, Status, fromGrpcError, splitGrpcDetails, toGrpcError } from '../../common/errors.js';
import { scorerError } from '../../scorer/client/errors.js';

const wire = (err: SadpError): { code: number; details: string; message: string } => {
  const g = toGrpcError(err);
  return { code: g.code, details: g.details, message: `${g.code} ${status[g.code]}: ${g.details}` };
};

test('splitGrpcDetails takes the code back out of what toGrpcError wrote', () => {
  const err = new SadpError('SADP_JOB_NOT_FOUND', 'job x not found', { status: Status.NOT_FOUND });
  assert.deepEqual(splitGrpcDetails(toGrpcError(err).details), {
    code: 'SADP_JOB_NOT_FOUND',
    message: 'job x not found',
  });
  assert.deepEqual(splitGrpcDetails('plain failure: x'), { code: undefined, message: 'plain failure: x' });
});

test('fromGrpcError keeps the server’s code and status, puts the call in front, and never repeats the code', () => {
  const remote = wire(new SadpError('SADP_JOB_NOT_FOUND', 'job x not found', { status: Status.NOT_FOUND }));
  const err = fromGrpcError(remote, 'scorer 127.0.0.1:1');
  assert.equal(err.code, 'SADP_JOB_NOT_FOUND');
  assert.equal(err.status, Status.NOT_FOUND);
  assert.equal(err.message, 'scorer 127.0.0.1:1: job x not found');
  assert.equal(err.cause, remote);
  const plain = fromGrpcError(
    { code: Status.UNAVAILABLE, details: 'No connection established' },
    'scorer a:1',
  );
  assert.equal(plain.code, 'SADP_RPC_FAILED');
  assert.equal(plain.status, Status.UNAVAILABLE);
});

test('the loader’s scorer errors name the code once', () => {
  const remote = wire(new SadpError('SADP_JOB_NOT_FOUND', 'job x not found', { status: Status.NOT_FOUND }));
  const err = scorerError(remote, 'describe job x');
  assert.equal(err.code, 'SADP_JOB_NOT_FOUND');
  assert.equal(err.message, 'describe job x: job x not found');
  const other = scorerError(
    wire(new SadpError('SADP_INVALID_JOB_SPEC', 'spec.epochs: bad', { status: Status.INVALID_ARGUMENT })),
    'plan of job x epoch 0',
  );
  assert.doesNotMatch(other.message, /SADP_INVALID_JOB_SPEC/);
});
