/* Stand-in for libnvinfer_plugin.so.N: no plugin registry, plugin initialisation "fails". */
#include <stddef.h>

void *getPluginRegistry(void) { return NULL; }
int initLibNvInferPlugins(void *logger, const char *lib_namespace) { (void)logger; (void)lib_namespace; return 0; }
