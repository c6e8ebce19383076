"""The agent service (`cairn run`): backup sets, schedules, change watching, control API.

    daemon     life cycle and the scheduling loop (ticks, pause, resources, reloads)
    runner     runs one set's backup at a time: journal → engine → outcome
    backend    the control API's actions on the running service
    schedule   when a set is due (pure)          durations  10s/15m/1h, windows
    watcher    watchdog → change journal         journal    per-set changed paths, on disk
    config     config.toml, validated            tomlwrite  its writer
    archives   destinations, passphrases, keys   throttle   upload limit wrapper
    resources  presence, battery, metered        clock      wall/monotonic, sleep detection
    state      state.json (runs, pause)          status     the API's Status
    tasks      restore/prune tasks               events     the event stream
    excludes   built-in and CACHEDIR.TAG
    secrets    passphrase files, log scrubbing   logs       rotating service log
    layout     per-user / system folders         support    the support bundle

See docs/service.md and docs/local-api.md.
"""
