// libyaml (Debian: libyaml-dev), for the Cartridges module's YAML reader.
#include <yaml.h>
