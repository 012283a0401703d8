// libcap, for the Containment module only (dropping every capability of gear processes).
#include <sys/capability.h>
#include <sys/prctl.h>
#include <linux/capability.h>
