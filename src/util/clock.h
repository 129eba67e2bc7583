// Kept so branches written against the old name still build: the clock lives in util/time.h.
#pragma once

#include "util/time.h"
