// Generated from the magics' argument parsers (magnus_jupyter/magics.py): do not edit.
// Regenerate: python -m magnus_jupyter.magic_table labextension/src/magics.generated.ts

export const MAGIC_TABLE = {
  "magnus_load": {
    "line": true,
    "cell": false,
    "values": [],
    "switches": [],
    "choices": {},
    "ints": [],
    "minPositional": 1,
    "maxPositional": 1
  },
  "magnus_map": {
    "line": true,
    "cell": true,
    "values": [
      "--iterate-on",
      "--iterate-as",
      "--next",
      "--on-failure",
      "--failure-policy"
    ],
    "switches": [],
    "choices": {
      "--failure-policy": [
        "finish_all",
        "fail_fast"
      ]
    },
    "ints": [],
    "minPositional": 1,
    "maxPositional": null
  },
  "magnus_parallel": {
    "line": true,
    "cell": true,
    "values": [
      "--next",
      "--on-failure",
      "--failure-policy"
    ],
    "switches": [],
    "choices": {
      "--failure-policy": [
        "finish_all",
        "fail_fast"
      ]
    },
    "ints": [],
    "minPositional": 1,
    "maxPositional": null
  },
  "magnus_reset": {
    "line": true,
    "cell": false,
    "values": [],
    "switches": [],
    "choices": {},
    "ints": [],
    "minPositional": 0,
    "maxPositional": 0
  },
  "magnus_retry": {
    "line": true,
    "cell": false,
    "values": [
      "--workers",
      "--param"
    ],
    "switches": [
      "--background"
    ],
    "choices": {},
    "ints": [
      "--workers"
    ],
    "minPositional": 0,
    "maxPositional": 1
  },
  "magnus_run": {
    "line": true,
    "cell": false,
    "values": [
      "--workers",
      "-p",
      "--parameters-file",
      "--param",
      "--executor",
      "--scheduler",
      "--from",
      "--only"
    ],
    "switches": [
      "--background",
      "--reuse"
    ],
    "choices": {},
    "ints": [
      "--workers"
    ],
    "minPositional": 0,
    "maxPositional": 0
  },
  "magnus_runs": {
    "line": true,
    "cell": false,
    "values": [],
    "switches": [],
    "choices": {},
    "ints": [],
    "minPositional": 0,
    "maxPositional": 1
  },
  "magnus_show": {
    "line": true,
    "cell": false,
    "values": [],
    "switches": [],
    "choices": {},
    "ints": [],
    "minPositional": 0,
    "maxPositional": 0
  },
  "magnus_step": {
    "line": true,
    "cell": true,
    "values": [
      "--next",
      "--on-failure",
      "--notebook",
      "--returns",
      "--branch",
      "--inputs"
    ],
    "switches": [
      "--shell",
      "--stub",
      "--no-cache"
    ],
    "choices": {},
    "ints": [],
    "minPositional": 1,
    "maxPositional": null
  },
  "magnus_yaml": {
    "line": true,
    "cell": false,
    "values": [],
    "switches": [],
    "choices": {},
    "ints": [],
    "minPositional": 0,
    "maxPositional": 1
  }
} as const;
