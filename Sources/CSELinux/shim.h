// libselinux, for the Containment module only (labels, exec contexts).
#include <selinux/selinux.h>
