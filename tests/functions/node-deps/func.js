'use strict';
// A function with a dependency in node_modules, the way npm installs one: the build context
// must carry node_modules, and .dockerignore (secret.txt) must keep what it names out.
const fs = require('fs');
const path = require('path');
const greet = require('tiny-greet');

module.exports.handler = async (request) => ({
  greeting: greet(request.queryParam('name', 'world')),
  secretShipped: fs.existsSync(path.join(__dirname, 'secret.txt')),
});
