import XenGnt
