#!/usr/bin/env node
'use strict';
// The image's entrypoint: load /function/func.js, then serve hot or cold (HOTFN_FORMAT).
require('../lib/main').main();
