#!/bin/sh
echo "$GREETING from $APP_HOME: $*"
