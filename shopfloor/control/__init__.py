"""Remote control: command types, interlocks, two-step confirmation, senders and the audit log (docs/control.md).

Import the parts from their modules (config, service, audit, api): the plant schema imports
``shopfloor.control.config``, so this package's import stays light.
"""
