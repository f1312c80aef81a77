'use strict';
// Benchmark function (Node): echo the request body; with `x-bench: sum`, parse the body as a
// JSON array of numbers with a hand-written parser and answer their sum (the JIT/warm-up probe).

function isNumberChar(c) {
  // digits . e E + -
  return (c >= 48 && c <= 57) || c === 46 || c === 101 || c === 69 || c === 43 || c === 45;
}

function jsonSum(buf) {
  let total = 0;
  let i = 0;
  const n = buf.length;
  while (i < n) {
    const c = buf[i];
    if (c === 45 || (c >= 48 && c <= 57)) {
      const start = i;
      i++;
      while (i < n && isNumberChar(buf[i])) i++;
      total += Number(buf.latin1Slice(start, i));
    } else if (c === 91 || c === 93 || c === 44 || c === 32 || c === 9 || c === 10 || c === 13) {
      i++;
    } else {
      throw new Error(`unexpected byte ${c} at ${i}`);
    }
  }
  return total;
}

module.exports.handler = (request) => {
  if (request.header('x-bench') === 'sum') {
    return String(jsonSum(request.body));
  }
  return request.body;
};
