'use strict';

module.exports.handler = async (request) => {
  const name = request.queryParam('name') || request.text() || 'world';
  return `Hello, ${name}!\n`;
};
