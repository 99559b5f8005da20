"""The operator's commands over a store, one module each (`talkgate migrate`, ...): what they
do and what they print; gateway/cli.py only reads their arguments."""
