package containerspec

import runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

// hasSELinuxOptions tells whether a pod or container asks for an SELinux label.
func hasSELinuxOptions(o *runtime.SELinuxOption) bool {
	return o.GetUser()+o.GetRole()+o.GetType()+o.GetLevel() != ""
}
