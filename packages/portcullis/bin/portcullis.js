#!/usr/bin/env node
// The `portcullis` command. A committed shim, so npm can link the command on a fresh clone before
// `npm install` has run the build that produces dist/.
import "../dist/cli/main.js";
