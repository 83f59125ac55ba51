#include "greet.h"

#ifndef GREETING
#define GREETING "hello"
#endif

const char *greeting(void) { return GREETING; }
